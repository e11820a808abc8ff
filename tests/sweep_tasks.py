"""Tasks for the sweep tests (importable by Dask worker processes)."""
import os
import time


def square(cell, shared, threads):
    """A cell's value squared, plus the shared offset; counts its calls in a file."""
    with open(os.path.join(shared["dir"], f"calls-{cell['i']}"), "a") as fh:
        fh.write("x")
    time.sleep(shared.get("sleep", 0.0))
    return {"value": cell["i"] ** 2 + shared["offset"]}


def square_killing_once(cell, shared, threads):
    """As square, but the first task to run kills its own worker process (a lost node)."""
    marker = os.path.join(shared["dir"], "killed")
    if cell["i"] == shared["victim"] and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return square(cell, shared, threads)


def square_interrupted(cell, shared, threads):
    """As square, but Ctrl-C arrives at cell ``shared["stop"]``."""
    if cell["i"] == shared["stop"]:
        raise KeyboardInterrupt
    return square(cell, shared, threads)
