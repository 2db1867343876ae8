using System.Collections.Immutable;

namespace LaPerm.Core.Backend;

/// <summary>An immutable tensor shape; the last dimension varies fastest (row-major).</summary>
public readonly record struct Shape
{
    private readonly ImmutableArray<int> _dims;

    public Shape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        long length = 1;
        foreach (var d in dims)
        {
            if (d <= 0) throw new ArgumentOutOfRangeException(nameof(dims), $"dimension {d} in ({string.Join(", ", dims)}) must be positive");
            length *= d;
            if (length > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(dims), $"shape ({string.Join(", ", dims)}) has more than {int.MaxValue} elements");
        }
        _dims = [.. dims];
        Length = (int)length;
    }

    public ImmutableArray<int> Dims => _dims.IsDefault ? [] : _dims;
    public int Rank => Dims.Length;
    public int Length { get; }
    public int this[int axis] => Dims[axis < 0 ? Rank + axis : axis];

    public bool Equals(Shape other) => Dims.AsSpan().SequenceEqual(other.Dims.AsSpan());
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in Dims) h.Add(d);
        return h.ToHashCode();
    }

    public override string ToString() => "(" + string.Join(", ", Dims) + ")";
}
