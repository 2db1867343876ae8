using LaPerm.Core.IO;
using LaPerm.Core.Model;

namespace LaPerm.Core.Checkpoints;

/// <summary>
/// Reconnection traffic: at every sync, per reconnected tensor, the fraction of positions whose
/// value (bit pattern) changed since the previous sync and since initialisation. It keeps a host
/// copy of the initial values and of the values at the previous sync, and downloads each
/// reconnected tensor once per sync (cheap on the CPU; a device-to-host copy on a GPU).
/// </summary>
public sealed class ReconnectionTraffic
{
    private readonly Network _network;
    private readonly Parameter[] _tensors;
    private readonly float[][] _initial;
    private readonly float[][] _previous;
    private readonly float[][] _current;

    /// <summary>Captures the tensors' current contents as the initial (and previous-sync) values.</summary>
    public ReconnectionTraffic(Network network, IEnumerable<Parameter> reconnected)
    {
        _network = network;
        _tensors = [.. reconnected];
        _initial = [.. _tensors.Select(p => new float[p.Value.Length])];
        for (int i = 0; i < _tensors.Length; i++) network.Backend.Download(_tensors[i].Value, _initial[i]);
        _previous = [.. _initial.Select(a => (float[])a.Clone())];
        _current = [.. _tensors.Select(p => new float[p.Value.Length])];
    }

    public IReadOnlyList<string> Names => [.. _tensors.Select(p => p.Name)];

    /// <summary>Measures the sync that just happened and makes it the previous one.</summary>
    public (Dictionary<string, double> SincePreviousSync, Dictionary<string, double> SinceInit) Measure()
    {
        var sincePrevious = new Dictionary<string, double>();
        var sinceInit = new Dictionary<string, double>();
        for (int i = 0; i < _tensors.Length; i++)
        {
            _network.Backend.Download(_tensors[i].Value, _current[i]);
            sincePrevious[_tensors[i].Name] = Math.Round(ChangedFraction(_current[i], _previous[i]), 6);
            sinceInit[_tensors[i].Name] = Math.Round(ChangedFraction(_current[i], _initial[i]), 6);
            _current[i].AsSpan().CopyTo(_previous[i]);
        }
        return (sincePrevious, sinceInit);
    }

    /// <summary>Fraction of positions whose bit pattern differs (so -0.0 vs +0.0 counts as a change, NaN never equals itself by accident).</summary>
    public static double ChangedFraction(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("lengths differ");
        if (a.Length == 0) return 0;
        var ia = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(a);
        var ib = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(b);
        long changed = 0;
        for (int i = 0; i < ia.Length; i++)
            if (ia[i] != ib[i]) changed++;
        return (double)changed / a.Length;
    }

    /// <summary>What a checkpoint stores: initial/NAME and previous_sync/NAME.</summary>
    public IReadOnlyList<NamedArray> Export() =>
        [.. _tensors.Select((p, i) => new NamedArray("initial/" + p.Name, [.. p.Info.Shape.Dims], _initial[i])),
         .. _tensors.Select((p, i) => new NamedArray("previous_sync/" + p.Name, [.. p.Info.Shape.Dims], _previous[i]))];

    /// <summary>Restores from <see cref="Export"/>'s arrays (already checked for names and shapes).</summary>
    public void Import(IReadOnlyDictionary<string, NamedArray> arrays)
    {
        for (int i = 0; i < _tensors.Length; i++)
        {
            arrays["initial/" + _tensors[i].Name].Values.CopyTo(_initial[i], 0);
            arrays["previous_sync/" + _tensors[i].Name].Values.CopyTo(_previous[i], 0);
        }
    }
}
