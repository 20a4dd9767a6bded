"""dshell: a shell for clusters."""

__version__ = "0.1.0"
