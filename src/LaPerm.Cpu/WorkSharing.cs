namespace LaPerm.Cpu;

/// <summary>
/// The backend's threads and the one way its ops split work. <see cref="For"/> cuts an index
/// range into blocks; the calling thread and up to Threads - 1 worker threads claim blocks in
/// turn until none is left, and the call returns when every claimed block is done.
///
/// Which thread runs a block, and how many blocks each thread gets, varies from run to run.
/// Every op therefore computes each output element from its own index, in an order of its
/// own, within one block, so results are bit-identical for any thread count and any split
/// (the tests check it). The slot passed to the body (0 = the caller, 1 .. Threads-1 = the
/// workers) is unique among blocks running at the same time and indexes per-thread scratch.
///
/// Why not a static split through Parallel.For: on a machine where other processes compete
/// for the cores, a worker often starts late; a static split then waits for its whole chunk,
/// and Parallel.For waits for a late replica to start even after the caller did its work (we
/// measured most of the data gradient's short per-image regions run by the caller alone,
/// then waiting). Here the caller never waits for a block nobody has claimed.
///
/// Workers start on first use and end after an idle timeout (2 s) without work, so a
/// backend that is never disposed leaves no threads behind for long.
/// </summary>
internal sealed class WorkSharing : IDisposable
{
    /// <summary>Blocks per thread a range is cut into at most: small enough to claim cheaply, enough to even out late starts.</summary>
    private const int BlocksPerThread = 8;

    private readonly TimeSpan _idleTimeout;
    private readonly Worker[] _workers;
    private Region? _current;
    private volatile bool _disposed;

    /// <param name="threads">The caller and threads - 1 workers.</param>
    /// <param name="idleTimeout">How long a worker waits for work before it ends (default 2 s).</param>
    public WorkSharing(int threads, TimeSpan? idleTimeout = null)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), $"threads must be at least 1, got {threads}");
        Threads = threads;
        _idleTimeout = idleTimeout ?? TimeSpan.FromSeconds(2);
        _workers = new Worker[threads - 1];
        for (int i = 0; i < _workers.Length; i++) _workers[i] = new Worker(this, i + 1);
    }

    public int Threads { get; }

    /// <summary>Start of chunk <paramref name="chunk"/> when [0, count) is split into <paramref name="chunks"/> near-equal parts.</summary>
    public static int ChunkStart(int count, int chunks, int chunk) => (int)((long)count * chunk / chunks);

    /// <summary>
    /// Calls body(state, slot, start, end) for consecutive blocks [start, end) covering [0, count)
    /// exactly once, in parallel; inline when one block is all there is. Blocks hold at least
    /// <paramref name="minPerBlock"/> indices (where threading costs more than it saves, fewer
    /// blocks) and at most about count / (8 * Threads).
    /// </summary>
    public void For<TState>(int count, int minPerBlock, TState state, Action<TState, int, int, int> body)
    {
        if (count <= 0) return;
        int perBlock = Math.Max(Math.Max(1, minPerBlock), (int)(((long)count + Threads * BlocksPerThread - 1) / (Threads * BlocksPerThread)));
        int blocks = (int)(((long)count + perBlock - 1) / perBlock);
        if (Threads == 1 || blocks == 1)
        {
            body(state, 0, 0, count);
            return;
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        var region = new Region<TState>(count, perBlock, blocks, state, body);
        Volatile.Write(ref _current, region);
        for (int i = 0; i < Math.Min(_workers.Length, blocks - 1); i++) _workers[i].Wake();
        region.Work(0);
        region.WaitForClaimedBlocks();
        Volatile.Write(ref _current, null);
        region.ThrowIfFailed();
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var worker in _workers) worker.Stop();
    }

    private abstract class Region
    {
        private readonly int _blocks;
        private int _next;
        private int _finished;
        private Exception? _failure;

        protected Region(int blocks) => _blocks = blocks;

        /// <summary>Claims and runs blocks until none is left.</summary>
        public void Work(int slot)
        {
            while (true)
            {
                int block = Interlocked.Increment(ref _next) - 1;
                if (block >= _blocks) return;
                try
                {
                    Run(slot, block);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, e, null);
                }
                finally
                {
                    Interlocked.Increment(ref _finished);
                }
            }
        }

        /// <summary>Called after the caller's own <see cref="Work"/>: every block is claimed, so this waits only for running ones.</summary>
        public void WaitForClaimedBlocks()
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _finished) < _blocks) spin.SpinOnce(sleep1Threshold: -1);
        }

        public void ThrowIfFailed()
        {
            if (_failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_failure);
        }

        protected abstract void Run(int slot, int block);
    }

    private sealed class Region<TState>(int count, int perBlock, int blocks, TState state, Action<TState, int, int, int> body) : Region(blocks)
    {
        protected override void Run(int slot, int block)
        {
            int start = block * perBlock;
            body(state, slot, start, Math.Min(count, start + perBlock));
        }
    }

    /// <summary>One worker thread: sleeps on its semaphore, runs the current region when woken, ends when idle for long.</summary>
    private sealed class Worker(WorkSharing owner, int slot)
    {
        private readonly SemaphoreSlim _wake = new(0);
        private int _running;

        public void Wake()
        {
            if (Interlocked.CompareExchange(ref _running, 1, 0) == 0)
            {
                var thread = new Thread(Loop) { IsBackground = true, Name = $"LaPerm.Cpu worker {slot}" };
                thread.Start();
            }
            // A count left over from a wake the worker slept through only causes one empty wake-up.
            if (_wake.CurrentCount == 0) _wake.Release();
        }

        /// <summary>Wakes a running worker so that it sees the owner disposed and ends.</summary>
        public void Stop()
        {
            if (Volatile.Read(ref _running) == 1) _wake.Release();
        }

        private void Loop()
        {
            while (true)
            {
                if (!_wake.Wait(owner._idleTimeout))
                {
                    Volatile.Write(ref _running, 0);
                    // A wake between the timeout and the line above found the thread still running: serve it.
                    if (_wake.CurrentCount == 0 || Interlocked.CompareExchange(ref _running, 1, 0) != 0) return;
                    continue;
                }
                if (owner._disposed) return;
                Volatile.Read(ref owner._current)?.Work(slot);
            }
        }
    }
}
