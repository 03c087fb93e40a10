"""``ember.distributed`` (``import ember.distributed as dist``): process groups over MPI
and NCCL, collectives with async work handles, DistributedDataParallel and
DistributedSampler, with PyTorch's names."""

from . import amp, comm_hooks, parallel, sampler  # amp registers GradScaler's rank sync
from .backends.base import Future, ReduceOp, Work
from .collectives import (
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    all_to_all,
    all_to_all_single,
    broadcast,
    broadcast_object_list,
    gather,
    gather_object,
    irecv,
    isend,
    recv,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
    scatter,
    send,
)
from .ddp import DistributedDataParallel
from .diagnostics import flight_recorder, get_rank_table
from .process_group import (
    NON_GROUP_MEMBER,
    ProcessGroup,
    barrier,
    destroy_process_group,
    get_backend,
    get_global_rank,
    get_group_rank,
    get_local_rank,
    get_local_world_size,
    get_process_group_ranks,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    is_available,
    is_initialized,
    is_main_process,
    is_mpi_available,
    is_nccl_available,
    new_group,
    print0,
    set_debug_level,
)
from .sampler import DistributedSampler
