"""LLVM intrinsics for numba kernels: popcount, bit length, prefetch and the cycle counter.

numba exposes none of these directly. Each is one instruction on x86-64 (POPCNT, LZCNT,
PREFETCHT0, RDTSC) and all are cacheable (`cache=True`), unlike ctypes calls. Shared by
the Connect Four bitboard (`games.connect4.bitboard`) and the solver (`solver.search`).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def popcount64(typingctx, x):
    """Number of set bits of a uint64, as a uint64."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def leading_zeros64(typingctx, x):
    """Number of leading zero bits of a uint64 (64 for zero), as a uint64."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.uint64(types.uint64), codegen


@intrinsic
def prefetch(typingctx, array, index):
    """Hint the CPU to fetch ``array[index]`` into all cache levels (read, high locality)."""
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        ary = context.make_array(array_type)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, array_type, ary, [args[1]], wraparound=False)
        byte_ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [byte_ptr, i32(0), i32(3), i32(1)])  # read, locality 3, data cache
        return context.get_dummy_value()

    return types.void(array, index), codegen


@intrinsic
def cycle_counter(typingctx):
    """The CPU's time-stamp counter (RDTSC): cycles at a constant rate, for timing inside kernels."""

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, []), "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@njit(cache=True)
def read_cycle_counter():
    """`cycle_counter` callable from Python (for calibration against wall time)."""
    return cycle_counter()
