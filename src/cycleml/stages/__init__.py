"""One module per DVC stage; each has a ``run`` the CLI calls and pure functions to test."""
