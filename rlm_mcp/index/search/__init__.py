"""Reading an index: grep (trigram prefilter, ripgrep narrowing, the killable helper), symbol
look-ups and ranked search, all behind :class:`.searcher.Searcher`."""
