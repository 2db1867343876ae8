using System.Runtime.CompilerServices;

namespace LaPerm.Core.Backend;

/// <summary>
/// Counter-based random numbers for dropout: a pure function of (seed, step, index), so
/// every backend draws the same mask with no generator state to carry or checkpoint.
/// The CUDA version (cuda/kernels/dropout.cu) is the same arithmetic on 64-bit integers.
/// </summary>
public static class DropoutRandom
{
    /// <summary>SplitMix64's finaliser: a bijective 64-bit mix.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform float in [0, 1) with 24 random bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Uniform(ulong seed, ulong step, uint index)
    {
        ulong stream = Mix(seed ^ (step * 0x9E3779B97F4A7C15UL));
        ulong z = Mix(stream + (index + 1UL) * 0x9E3779B97F4A7C15UL);
        return (z >> 40) * (1.0f / 16777216.0f);
    }
}
