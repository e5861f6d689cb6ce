print("codebook: not yet written")
