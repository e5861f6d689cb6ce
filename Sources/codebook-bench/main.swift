print("codebook-bench: not yet written")
