using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LaPerm.Cpu;

/// <summary>
/// The most floating-point arithmetic these cores do: 256-bit fused multiply-adds with nothing
/// else in the loop, on <c>threads</c> threads at once, as GFLOP/s (a multiply-add counts two).
/// It is the ceiling that a convolution or GEMM kernel's GFLOP/s is read against: `bench train`
/// prints a step's arithmetic rate as a share of it. Measured, not computed from a clock rate, so
/// turbo, SMT siblings and a virtual machine's share of its host are all in it.
/// </summary>
public static class FmaPeak
{
    /// <summary>Independent accumulators: enough to cover the FMA latency (4-5 cycles) on two ports, and few enough for 16 vector registers.</summary>
    private const int Chains = 12;

    /// <summary>Loop passes between clock reads: 12 x 8 x 2 x 2^16 = 12.6 MFLOP, about 0.2 ms on one core.</summary>
    private const int PassesPerCheck = 1 << 16;

    /// <summary>False where there is no FMA (no AVX2+FMA GEMM either): then there is no peak to state.</summary>
    public static bool Applies => Fma.IsSupported;

    /// <summary>
    /// GFLOP/s of <paramref name="threads"/> threads each running the FMA loop for about
    /// <paramref name="duration"/> (after a short warm-up that lets the clock rise), all started
    /// together; the best of <paramref name="repeats"/> runs (others' work on the machine only ever
    /// lowers it).
    /// </summary>
    public static double MeasureGflops(int threads, TimeSpan duration, int repeats = 3)
    {
        if (!Applies) throw new PlatformNotSupportedException("this CPU has no FMA instructions, so there is no FMA peak to measure");
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        Run(threads, TimeSpan.FromMilliseconds(20));
        double best = 0;
        for (int r = 0; r < repeats; r++) best = Math.Max(best, Run(threads, duration));
        return best;
    }

    private static double Run(int threads, TimeSpan duration)
    {
        var passes = new long[threads];
        using var start = new Barrier(threads + 1);
        var workers = new Thread[threads];
        long ticks = (long)(duration.TotalSeconds * Stopwatch.Frequency);
        for (int t = 0; t < threads; t++)
        {
            int slot = t;
            workers[t] = new Thread(() =>
            {
                start.SignalAndWait();
                passes[slot] = Loop(ticks);
            }) { IsBackground = true, Name = "fma-peak" };
            workers[t].Start();
        }
        start.SignalAndWait();
        long began = Stopwatch.GetTimestamp();
        foreach (var w in workers) w.Join();
        double seconds = Stopwatch.GetElapsedTime(began).TotalSeconds;
        return passes.Sum() * (double)(Chains * Vector256<float>.Count * 2) / seconds / 1e9;
    }

    /// <summary>Passes of <see cref="Chains"/> dependent FMA chains until <paramref name="ticks"/> have gone by.</summary>
    private static long Loop(long ticks)
    {
        var chains = new Accumulators();
        long end = Stopwatch.GetTimestamp() + ticks, passes = 0;
        do
        {
            Burst(ref chains);
            passes += PassesPerCheck;
        }
        while (Stopwatch.GetTimestamp() < end);
        // Consumed, so the JIT cannot drop the chains; never true for these inputs.
        if (float.IsNaN(chains.Sum())) throw new InvalidOperationException("the FMA loop produced NaN");
        return passes;
    }

    /// <summary>
    /// <see cref="PassesPerCheck"/> passes with the chains in registers. A loop of its own because
    /// every vector register is caller-saved: with the clock read inside it, the JIT kept all
    /// twelve chains on the stack (a load and a store around each FMA, a quarter of the peak).
    /// </summary>
    // Fully optimised from the first call: tier-0 code keeps the vectors in memory too.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Burst(ref Accumulators chains)
    {
        // x * m + c with m just below 1 converges instead of overflowing, so no value turns
        // subnormal or infinite (either could slow the FMA units on some cores).
        var m = Vector256.Create(0.99999f);
        var c = Vector256.Create(1e-5f);
        Vector256<float> a0 = chains.A0, a1 = chains.A1, a2 = chains.A2, a3 = chains.A3, a4 = chains.A4, a5 = chains.A5;
        Vector256<float> a6 = chains.A6, a7 = chains.A7, a8 = chains.A8, a9 = chains.A9, a10 = chains.A10, a11 = chains.A11;
        for (int i = 0; i < PassesPerCheck; i++)
        {
            a0 = Fma.MultiplyAdd(a0, m, c); a1 = Fma.MultiplyAdd(a1, m, c); a2 = Fma.MultiplyAdd(a2, m, c); a3 = Fma.MultiplyAdd(a3, m, c);
            a4 = Fma.MultiplyAdd(a4, m, c); a5 = Fma.MultiplyAdd(a5, m, c); a6 = Fma.MultiplyAdd(a6, m, c); a7 = Fma.MultiplyAdd(a7, m, c);
            a8 = Fma.MultiplyAdd(a8, m, c); a9 = Fma.MultiplyAdd(a9, m, c); a10 = Fma.MultiplyAdd(a10, m, c); a11 = Fma.MultiplyAdd(a11, m, c);
        }
        chains.A0 = a0; chains.A1 = a1; chains.A2 = a2; chains.A3 = a3; chains.A4 = a4; chains.A5 = a5;
        chains.A6 = a6; chains.A7 = a7; chains.A8 = a8; chains.A9 = a9; chains.A10 = a10; chains.A11 = a11;
    }

    /// <summary>The <see cref="Chains"/> accumulators between bursts, each chain starting at its own value.</summary>
    private struct Accumulators()
    {
        public Vector256<float> A0 = Vector256.Create(1f), A1 = Vector256.Create(2f), A2 = Vector256.Create(3f), A3 = Vector256.Create(4f);
        public Vector256<float> A4 = Vector256.Create(5f), A5 = Vector256.Create(6f), A6 = Vector256.Create(7f), A7 = Vector256.Create(8f);
        public Vector256<float> A8 = Vector256.Create(9f), A9 = Vector256.Create(10f), A10 = Vector256.Create(11f), A11 = Vector256.Create(12f);

        public readonly float Sum() => (((A0 + A1) + (A2 + A3)) + ((A4 + A5) + (A6 + A7)) + ((A8 + A9) + (A10 + A11))).ToScalar();
    }
}
