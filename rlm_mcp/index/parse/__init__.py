"""Tree-sitter symbols: the language table, the tags extraction and the ``queries/`` it runs."""
