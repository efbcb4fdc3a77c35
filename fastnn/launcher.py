"""What an MPI launcher (``mpiexec``, ``srun``) tells the processes it starts, read from
the environment without loading MPI: the world's size, this process's rank in it, and
its rank among the processes on its own machine (which GPU it takes)."""

from __future__ import annotations

import os

#: as MPICH / Intel MPI (PMI) and Open MPI set them
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK")
#: as MPICH's Hydra, Open MPI and Slurm set them
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


def _first_number(names: tuple[str, ...], default: int) -> int:
    for name in names:
        text = os.environ.get(name, "").strip()
        if text.isdigit():
            return int(text)
    return default


def launched_size() -> int:
    """The number of ranks the MPI launcher started (1 when not started by one)."""
    return max(_first_number(SIZE_VARIABLES, 1), 1)


def launched_rank() -> int:
    """This process's rank as the launcher numbered it (0 when not started by one)."""
    return _first_number(RANK_VARIABLES, 0)


def launched_local_rank() -> int:
    """This process's rank among the launcher's processes on this machine (0 when not
    started by one, or by a launcher that does not say)."""
    return _first_number(LOCAL_RANK_VARIABLES, 0)
