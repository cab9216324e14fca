"""The applications over the library: the command line, batch scoring (local and Beam), serving, the REST client."""
