"""Reference values written by other libraries, and the scripts that write them."""
