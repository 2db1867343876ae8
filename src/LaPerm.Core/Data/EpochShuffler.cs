using System.Numerics;
using System.Runtime.CompilerServices;
using LaPerm.Core.Backend;

namespace LaPerm.Core.Data;

/// <summary>
/// The order in which an epoch visits the training records, as a stateless bijection
/// position -> record index for (seed, epoch, count). Any position's record is computed on its
/// own, with no table: a GPU kernel finds each batch's records itself (cuda/kernels/data.cu,
/// <c>epoch_order_index</c>, is the same arithmetic on the same integers), and a resumed run
/// rebuilds the order from the epoch number alone.
///
/// The bijection is a balanced Feistel network on the smallest even number of bits b whose
/// 2^b values cover count (b >= 2), with <see cref="Rounds"/> rounds whose round function is
/// SplitMix64's finaliser keyed by (seed, epoch, round). A Feistel network is a permutation of
/// 0..2^b-1 whatever its round function; cycle-walking (apply it again while the result is not
/// below count) restricts it to a permutation of 0..count-1, because the cycle through a
/// position below count returns below count. Since 2^b &lt; 4 count, a position walks fewer
/// than four times on average.
/// </summary>
public static class EpochShuffler
{
    // Keeps the shuffle's random stream apart from dropout's and augmentation's.
    private const ulong StreamSalt = 0x5D1F_0B6A_93C4_27E5UL;

    /// <summary>Feistel rounds: four already give a pseudo-random permutation (Luby-Rackoff); six leave margin.</summary>
    public const int Rounds = 6;

    /// <summary>A new array holding the permutation of 0..count-1 for <paramref name="epoch"/>.</summary>
    public static int[] Permutation(ulong seed, int epoch, int count)
    {
        var order = new int[count];
        Fill(seed, epoch, count, 0, order);
        return order;
    }

    /// <summary>
    /// Writes positions <paramref name="start"/> .. start+order.Length-1 of epoch
    /// <paramref name="epoch"/>'s order over <paramref name="count"/> records into <paramref name="order"/>.
    /// </summary>
    public static void Fill(ulong seed, int epoch, int count, int start, Span<int> order)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (start < 0 || (long)start + order.Length > count)
            throw new ArgumentOutOfRangeException(nameof(start), $"Positions {start}..{(long)start + order.Length - 1} are outside an epoch of {count} records.");
        ulong key = Key(seed, epoch);
        int halfBits = HalfBits(count);
        for (int i = 0; i < order.Length; i++)
            order[i] = Walk(key, halfBits, count, start + i);
    }

    /// <summary>The record that position <paramref name="position"/> of epoch <paramref name="epoch"/> visits.</summary>
    public static int IndexAt(ulong seed, int epoch, int count, int position)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if ((uint)position >= (uint)count)
            throw new ArgumentOutOfRangeException(nameof(position), $"Position {position} is outside an epoch of {count} records.");
        return Walk(Key(seed, epoch), HalfBits(count), count, position);
    }

    /// <summary>The per-epoch key every round function starts from.</summary>
    public static ulong Key(ulong seed, int epoch) =>
        DropoutRandom.Mix(seed ^ StreamSalt ^ ((ulong)(uint)epoch * 0x9E3779B97F4A7C15UL));

    /// <summary>Half the Feistel width: b/2 for the smallest even b >= 2 with 2^b >= count.</summary>
    public static int HalfBits(int count)
    {
        int bits = 32 - BitOperations.LeadingZeroCount((uint)(count - 1));
        return Math.Max(1, (bits + 1) / 2);
    }

    private static int Walk(ulong key, int halfBits, int count, int position)
    {
        uint x = (uint)position;
        do
        {
            x = Encrypt(key, halfBits, x);
        }
        while (x >= (uint)count);
        return (int)x;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Encrypt(ulong key, int halfBits, uint x)
    {
        uint mask = (1u << halfBits) - 1u;
        uint left = x >> halfBits, right = x & mask;
        for (uint round = 0; round < Rounds; round++)
        {
            ulong f = DropoutRandom.Mix(key ^ ((((ulong)round << 32) | right) * 0xD1B54A32D192ED03UL));
            uint next = left ^ ((uint)f & mask);
            left = right;
            right = next;
        }
        return (left << halfBits) | right;
    }
}
