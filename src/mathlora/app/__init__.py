"""The app: the command line, the root config, the stage list and the runner."""
