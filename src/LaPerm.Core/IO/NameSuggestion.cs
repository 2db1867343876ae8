namespace LaPerm.Core.IO;

/// <summary>
/// The name a mistyped one most likely meant (a flag, command, preset, model or data set), for
/// "unknown ..." messages: --epoch for --epochs, trian for train, lenet for lenet300.
/// </summary>
public static class NameSuggestion
{
    /// <summary>" (did you mean X?)" for the closest candidate, or empty when none is close.</summary>
    public static string DidYouMean(string typed, IEnumerable<string> candidates) =>
        Closest(typed, candidates) is { } match ? $" (did you mean {match}?)" : "";

    /// <summary>
    /// The candidate at the smallest edit distance (insertions, deletions, substitutions and
    /// swaps of neighbours, case ignored) when that is at most 1 for names of up to 4 characters
    /// and 2 beyond; else the only candidate that begins with the typed name (at least 2
    /// characters), or one of at least 3 that begins it; else null. Ties go to a candidate that
    /// begins with the typed name, then to the earlier one.
    /// </summary>
    public static string? Closest(string typed, IEnumerable<string> candidates)
    {
        string t = typed.ToLowerInvariant();
        int letters = t.TrimStart('-').Length;
        if (letters < 2) return null;   // one letter is one edit from every other: no evidence
        var list = candidates.Select(c => (Name: c, Lower: c.ToLowerInvariant())).ToList();
        // The nearest; at equal distance one that begins with the typed name (resnet5: resnet50c, not resnet20).
        var best = list.Select(c => (c.Name, Distance: Distance(t, c.Lower), Begins: c.Lower.StartsWith(t, StringComparison.Ordinal)))
            .OrderBy(c => c.Distance).ThenByDescending(c => c.Begins).FirstOrDefault();
        if (best.Name is not null && best.Distance <= (letters <= 4 ? 1 : 2) && best.Distance < t.Length) return best.Name;
        // A beginning that only one candidate has (f1 for f1-mnist), or a candidate the typed name extends (cifar10x).
        var begun = list.Where(c => c.Lower.StartsWith(t, StringComparison.Ordinal)).ToList();
        if (begun.Count == 1) return begun[0].Name;
        return list.FirstOrDefault(c => c.Name.TrimStart('-').Length >= 3 && t.StartsWith(c.Lower, StringComparison.Ordinal)).Name;
    }

    /// <summary>Optimal string alignment distance: Levenshtein plus the swap of two neighbouring characters.</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}
