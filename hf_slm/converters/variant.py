def assemble_variant(*a, **k):
    raise NotImplementedError
