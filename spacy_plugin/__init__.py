"""spaCy components for seqexit models: `seqexit_ner` (entities, or chunks in doc.spans["chunks"])
and `seqexit_tagger` (tag_/pos_), found by spaCy through the `spacy_factories` entry points, so
`nlp.add_pipe("seqexit_ner", config={"model": PATH})` needs no import of this package."""
