"""Loads the stslab pytest plugin in a checkout where it is not installed as an entry point."""

from importlib.metadata import entry_points

if not any(ep.value == "fixtures.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["fixtures.plugin"]
