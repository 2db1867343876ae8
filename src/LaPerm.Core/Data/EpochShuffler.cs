using LaPerm.Core.Backend;

namespace LaPerm.Core.Data;

/// <summary>
/// The order in which an epoch visits the training records: a Fisher-Yates permutation whose
/// every swap is drawn from a counter-based hash of (seed, epoch, position). Epoch e's order is
/// therefore a pure function of (seed, e, count): nothing to carry between epochs, and a
/// resumed run rebuilds it from the epoch number alone.
/// </summary>
public static class EpochShuffler
{
    // Keeps the shuffle's random stream apart from dropout's and augmentation's.
    private const ulong StreamSalt = 0x5D1F_0B6A_93C4_27E5UL;

    /// <summary>A new array holding the permutation of 0..count-1 for <paramref name="epoch"/>.</summary>
    public static int[] Permutation(ulong seed, int epoch, int count)
    {
        var order = new int[count];
        Fill(seed, epoch, order);
        return order;
    }

    /// <summary>Writes the permutation of 0..order.Length-1 for <paramref name="epoch"/> into <paramref name="order"/>.</summary>
    public static void Fill(ulong seed, int epoch, Span<int> order)
    {
        for (int i = 0; i < order.Length; i++)
            order[i] = i;
        ulong stream = DropoutRandom.Mix(seed ^ StreamSalt ^ ((ulong)(uint)epoch * 0x9E3779B97F4A7C15UL));
        for (int i = order.Length - 1; i > 0; i--)
        {
            ulong bits = DropoutRandom.Mix(stream + (ulong)i * 0xD1B54A32D192ED03UL);
            // The high half of a 64x64-bit product maps the hash to 0..i with negligible bias.
            int j = (int)Math.BigMul(bits, (ulong)(i + 1), out _);
            (order[i], order[j]) = (order[j], order[i]);
        }
    }
}
