import os
import sys

# Tests import the package as installed (or from the checkout's parent via the editable
# install); keep BLAS single-threaded so MPI ranks on 2 cores don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.dont_write_bytecode = True
