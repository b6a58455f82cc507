"""The `syncd` command: argument parsing, subcommands and their output."""
