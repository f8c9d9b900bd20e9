"""WebDataset shards: the one writer and reader of this project's tar files."""
