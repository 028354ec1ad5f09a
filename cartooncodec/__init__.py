"""CartoonCodec: the `cartooncodec` console command that drives every part of the product."""
