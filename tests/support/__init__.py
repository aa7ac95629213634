"""Helpers shared by the tests, in one place: a test module imports what it needs from here,
never from another test module. Each module holds one concern (the database, runs over HTTP,
collectors files, processes, ...)."""
