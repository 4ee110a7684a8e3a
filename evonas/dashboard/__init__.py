"""The live dashboard: a local web server of one or more run directories, read-only on them."""
