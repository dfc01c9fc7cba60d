"""Where an index lives: the storage seam (:mod:`.base`), SQLite (:mod:`.sqlite`), PostgreSQL
(:mod:`.postgres`), what the two share (:mod:`.common`) and the choice between them
(:mod:`.open`). SQL lives only in this package."""
