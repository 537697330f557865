"""One small reader per source format; each turns a path into a `Scan`."""
