"""Everything about one provider API shape, one module per shape."""
