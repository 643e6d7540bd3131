"""beadsmail: git-native mail, tasks and coordination for coding agents."""

__version__ = "0.1.0"
