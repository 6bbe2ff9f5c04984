"""The shipped default models (one folder each), installed as the package `seqexit_models`.

Found by name through `seqexit.shipped.resolve_model`; see each folder's MODEL.md."""
