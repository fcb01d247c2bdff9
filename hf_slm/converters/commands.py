def add_convert_parser(s):
    raise NotImplementedError

def run_convert(a):
    raise NotImplementedError
