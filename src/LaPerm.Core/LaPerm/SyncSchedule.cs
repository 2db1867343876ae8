using System.Globalization;

namespace LaPerm.Core.LaPerm;

/// <summary>
/// The k schedule: how many optimizer steps between synchronisations, per epoch.
/// Text forms: "250" (constant) or "0:100,5:400,20:1000" (from epoch 0 k = 100, from epoch 5
/// k = 400, ...; epochs count from 0). A sync happens after step t (global, from 1) when
/// t % k(epoch of t) == 0.
/// </summary>
public sealed record SyncSchedule(IReadOnlyList<(int FromEpoch, int K)> Entries)
{
    public static SyncSchedule Constant(int k) => new([(0, k)]);

    public int KAt(int epoch)
    {
        int k = Entries[0].K;
        foreach (var (from, value) in Entries)
            if (epoch >= from) k = value;
        return k;
    }

    public bool IsSyncStep(long step, int epoch) => step % KAt(epoch) == 0;

    public bool IsConstant => Entries.Count == 1;

    public static SyncSchedule Parse(string text)
    {
        var entries = new List<(int, int)>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            int colon = part.IndexOf(':', StringComparison.Ordinal);
            string epochText = colon < 0 ? "0" : part[..colon];
            string kText = colon < 0 ? part : part[(colon + 1)..];
            if (!int.TryParse(epochText, NumberStyles.None, CultureInfo.InvariantCulture, out int epoch)
                || !int.TryParse(kText, NumberStyles.None, CultureInfo.InvariantCulture, out int k) || k <= 0)
                throw new FormatException($"--k expects a positive step count (e.g. 250) or EPOCH:K pairs (e.g. 0:100,5:400), got '{text}'.");
            if (entries.Count > 0 && epoch <= entries[^1].Item1)
                throw new FormatException($"--k epochs must increase, got '{text}'.");
            entries.Add((epoch, k));
        }
        if (entries.Count == 0 || entries[0].Item1 != 0)
            throw new FormatException($"--k must start at epoch 0, got '{text}'.");
        return new SyncSchedule(entries);
    }

    public override string ToString() =>
        IsConstant ? Entries[0].K.ToString(CultureInfo.InvariantCulture) : string.Join(",", Entries.Select(e => $"{e.FromEpoch}:{e.K}"));
}
