from agenthub.cli import entry

entry()
