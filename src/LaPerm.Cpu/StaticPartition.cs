namespace LaPerm.Cpu;

/// <summary>
/// Runs work over a fixed, thread-count-determined split of an index range. Chunk i always
/// covers the same indices for a given (count, chunks), and every index is processed by
/// exactly one chunk in ascending order, so results never depend on scheduling. Chunk
/// indices double as worker indices into per-worker scratch.
/// </summary>
internal sealed class StaticPartition
{
    private readonly ParallelOptions _options;

    public StaticPartition(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), $"threads must be at least 1, got {threads}");
        Threads = threads;
        _options = new ParallelOptions { MaxDegreeOfParallelism = threads };
    }

    public int Threads { get; }

    /// <summary>Start of chunk <paramref name="chunk"/> when [0, count) is split into <paramref name="chunks"/> near-equal parts.</summary>
    public static int ChunkStart(int count, int chunks, int chunk) => (int)((long)count * chunk / chunks);

    /// <summary>
    /// Calls body(worker, start, end) for min(Threads, count) contiguous chunks of [0, count);
    /// runs inline when only one chunk is needed. <paramref name="minPerChunk"/> limits the
    /// split for small ranges (where threading costs more than it saves).
    /// </summary>
    public void For<TState>(int count, int minPerChunk, TState state, Action<TState, int, int, int> body)
    {
        if (count <= 0) return;
        int chunks = Math.Min(Threads, Math.Max(1, count / Math.Max(1, minPerChunk)));
        if (chunks == 1)
        {
            body(state, 0, 0, count);
            return;
        }
        Parallel.For(0, chunks, _options, chunk =>
            body(state, chunk, ChunkStart(count, chunks, chunk), ChunkStart(count, chunks, chunk + 1)));
    }
}
