using System.Runtime.CompilerServices;

namespace LaPerm.Core.Backend;

/// <summary>
/// The reference definition of a LaPerm synchronisation, used by the CPU backend and as
/// the oracle every device kernel is compared against, bit for bit.
///
/// Total order: values are compared by <see cref="OrderKey"/>, which orders
/// -NaN &lt; -inf &lt; ... &lt; -0.0 &lt; +0.0 &lt; ... &lt; +inf &lt; +NaN (IEEE-754 totalOrder on the
/// bit patterns). Ties (identical bit patterns) keep column order (stable). The same
/// mapping is used by the CUDA kernels (cuda/kernels/reconnect.cu).
/// </summary>
public static class Reconnection
{
    /// <summary>Maps a float to an unsigned key whose integer order is the documented total order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint OrderKey(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
    }

    /// <summary>The inverse of <see cref="OrderKey"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FromOrderKey(uint key)
    {
        uint bits = (key & 0x8000_0000u) != 0 ? key & 0x7FFF_FFFFu : ~key;
        return BitConverter.UInt32BitsToSingle(bits);
    }

    /// <summary>Sorts a row ascending under the total order (what is stored once per run as sorted0).</summary>
    public static void SortRow(ReadOnlySpan<float> row, Span<float> sorted)
    {
        if (sorted.Length != row.Length) throw new ArgumentException($"sorted has {sorted.Length} elements, row has {row.Length}");
        Span<uint> keys = row.Length <= 1024 ? stackalloc uint[row.Length] : new uint[row.Length];
        for (int i = 0; i < row.Length; i++) keys[i] = OrderKey(row[i]);
        keys.Sort();
        for (int i = 0; i < row.Length; i++) sorted[i] = FromOrderKey(keys[i]);
    }

    /// <summary>
    /// One row's synchronisation: w[order[i]] = sorted0[i], order = stable argsort of w.
    /// <paramref name="scratch"/> must hold at least w.Length elements.
    /// </summary>
    public static void SyncRow(Span<float> w, ReadOnlySpan<float> sorted0, Span<ulong> scratch)
    {
        int n = w.Length;
        if (sorted0.Length != n) throw new ArgumentException($"sorted0 has {sorted0.Length} elements, row has {n}");
        if (scratch.Length < n) throw new ArgumentException($"scratch has {scratch.Length} elements, row needs {n}");
        var pairs = scratch[..n];
        // (key << 32 | column) is unique per element, so any sort of it is a stable argsort.
        for (int i = 0; i < n; i++) pairs[i] = ((ulong)OrderKey(w[i]) << 32) | (uint)i;
        pairs.Sort();
        for (int i = 0; i < n; i++) w[(int)(uint)pairs[i]] = sorted0[i];
    }

    /// <summary>
    /// The slow, obviously-correct definition (brute-force rank counting), for tests only:
    /// rank(j) = #{i : key_i &lt; key_j} + #{i &lt; j : key_i == key_j}; w[j] = sorted0[rank(j)].
    /// </summary>
    public static void SyncRowBruteForce(Span<float> w, ReadOnlySpan<float> sorted0)
    {
        int n = w.Length;
        var keys = new uint[n];
        for (int i = 0; i < n; i++) keys[i] = OrderKey(w[i]);
        var result = new float[n];
        for (int j = 0; j < n; j++)
        {
            int rank = 0;
            for (int i = 0; i < n; i++)
                if (keys[i] < keys[j] || (keys[i] == keys[j] && i < j)) rank++;
            result[j] = sorted0[rank];
        }
        result.CopyTo(w);
    }

    /// <summary>True when <paramref name="row"/> is, bit for bit, a permutation of <paramref name="sorted0"/>.</summary>
    public static bool IsPermutationOf(ReadOnlySpan<float> row, ReadOnlySpan<float> sorted0)
    {
        if (row.Length != sorted0.Length) return false;
        var keys = new uint[row.Length];
        for (int i = 0; i < row.Length; i++) keys[i] = OrderKey(row[i]);
        Array.Sort(keys);
        for (int i = 0; i < keys.Length; i++)
            if (BitConverter.SingleToUInt32Bits(FromOrderKey(keys[i])) != BitConverter.SingleToUInt32Bits(sorted0[i])) return false;
        return true;
    }
}
