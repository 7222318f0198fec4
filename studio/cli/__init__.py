"""`python -m studio <command>`: `main` parses and dispatches, `common` has the one-line errors,
and each group of commands has its own module (image, style, text, music, walks, batch, reproduce,
download)."""
