def convert_slamkit_lm(*a, **k):
    raise NotImplementedError
