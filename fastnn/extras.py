"""How to install an optional extra, said the same way in every message.

fastnn is installed from its repository (``pip install -e ".[numba]"`` in the folder of
the clone); its distribution is called ``fastnn-scratch``, because the name ``fastnn``
on PyPI belongs to an unrelated project, which a ``pip install`` of that name with an
extra would fetch. So every hint names the clone's form, and the plain package as the
other way.
"""

from __future__ import annotations

#: the distribution's name (the import name stays ``fastnn``)
DISTRIBUTION = "fastnn-scratch"


def install_hint(extra: str, packages: str) -> str:
    """``pip install -e ".[extra]"`` in the fastnn folder, or the packages themselves."""
    return f'pip install -e ".[{extra}]" in the fastnn folder, or pip install {packages}'
