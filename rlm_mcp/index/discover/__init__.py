"""Finding a repository's files: the walk (git's listing or the file system), ignore rules and
the classification of each file (binary, generated, too large, language)."""
