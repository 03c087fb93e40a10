"""Each rank seeds ember alike and loads two epochs through 2 DataLoader workers whose samples
are NumPy, ember and Python random draws; rank 0 prints every rank's draws as one JSON line."""

import json
import random

import numpy as np

import ember
import ember.distributed as dist
from ember.utils.data import DataLoader, Dataset, get_worker_info


class Draws(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        info = get_worker_info()
        return [float(np.random.rand()), ember.rand(1).item(), random.random(), info.seed]


dist.init_process_group()
ember.manual_seed(0)  # the same on every rank, as a DDP script does for its model
loader = DataLoader(Draws(), batch_size=2, num_workers=2)
mine = [[[t.tolist() for t in batch] for batch in loader] for _ in range(2)]
everyone = [None] * dist.get_world_size()
dist.all_gather_object(everyone, mine)
if dist.get_rank() == 0:
    print(json.dumps(everyone), flush=True)
dist.destroy_process_group()
