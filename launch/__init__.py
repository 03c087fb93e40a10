"""ember-launch (``python -m ember.launch``) and the launcher-environment helpers.

Standard library only, so the launcher starts without NumPy or CuPy.
"""

from .env import LaunchInfo, detect, local_rank, local_world_size, rank, under_mpi, world_size
