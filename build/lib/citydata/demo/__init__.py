"""The demo city: a synthetic Changsha with its departments, their files and the known truth."""
