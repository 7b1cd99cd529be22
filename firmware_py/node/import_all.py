# Every firmware module must load under MicroPython 1.27: imported (the ones that
# touch no hardware at import time) or compiled (main.py runs the box when imported).
# make_config.py is a PC tool (CPython, argparse) and never goes onto a box.
import os

names = sorted(n[:-3] for n in os.listdir("/lib/firmware_py")
               if n.endswith(".py") and n not in ("__init__.py", "make_config.py"))
for name in names:
    if name == "main":
        compile(open("/lib/firmware_py/main.py").read(), "main.py", "exec")
    else:
        __import__("firmware_py." + name)
    print("loaded", name)
print("ALL LOADED", len(names))
