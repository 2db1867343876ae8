using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LaPerm.Core.Backend;

namespace LaPerm.Core.Data;

/// <summary>
/// The ranges of the random affine augmentation, as Keras' ImageDataGenerator takes them
/// (the published LaPerm code uses that generator): every parameter is drawn uniformly from
/// [-range, +range] around the identity.
/// </summary>
/// <param name="Name">none, mnist, cifar or shift-flip.</param>
/// <param name="RotationDegrees">Rotation drawn from [-r, r] degrees (positive: counter-clockwise as displayed).</param>
/// <param name="ZoomRange">Scale of the content drawn from [1 - z, 1 + z], independently for x and y (as Keras).</param>
/// <param name="ShiftFraction">Shift drawn from [-f, f] times the width (x) and height (y), in continuous pixels.</param>
/// <param name="HorizontalFlip">Mirror left-right with probability 0.5.</param>
public sealed record AugmentationPreset(string Name, float RotationDegrees, float ZoomRange, float ShiftFraction, bool HorizontalFlip)
{
    /// <summary>No augmentation: batches are the normalised images unchanged.</summary>
    public static AugmentationPreset None { get; } = new("none", 0f, 0f, 0f, false);

    /// <summary>The MNIST setup: rotate ±10°, zoom ±10 %, shift ±10 %.</summary>
    public static AugmentationPreset Mnist { get; } = new("mnist", 10f, 0.1f, 0.1f, false);

    /// <summary>The CIFAR setup: rotate ±15°, shift ±10 %, horizontal flip.</summary>
    public static AugmentationPreset Cifar { get; } = new("cifar", 15f, 0f, 0.1f, true);

    /// <summary>
    /// Shift ±10 % and horizontal flip, no rotation: the authors' ResNet notebook (Keras' CIFAR-10
    /// ResNet example), where Conv2/4/13 also rotate.
    /// </summary>
    public static AugmentationPreset ShiftFlip { get; } = new("shift-flip", 0f, 0f, 0.1f, true);

    public bool IsIdentity => RotationDegrees == 0f && ZoomRange == 0f && ShiftFraction == 0f && !HorizontalFlip;

    /// <summary>The preset named by --augment: none, mnist, cifar or shift-flip.</summary>
    /// <exception cref="ArgumentException">The name is none of those.</exception>
    public static AugmentationPreset Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "none" => None,
        "mnist" => Mnist,
        "cifar" or "cifar10" => Cifar,
        "shift-flip" => ShiftFlip,
        _ => throw new ArgumentException($"Unknown augmentation '{name}'; expected none, mnist, cifar or shift-flip.", nameof(name)),
    };
}

/// <summary>
/// One image's transform, defined input to output: first (optionally) mirror left-right, then
/// scale by (ZoomX, ZoomY) and rotate by RotationDegrees about the image centre
/// ((W-1)/2, (H-1)/2), then shift by (ShiftX, ShiftY) pixels (positive: right, down).
/// </summary>
public readonly record struct AffineTransform(float RotationDegrees, float ZoomX, float ZoomY, float ShiftX, float ShiftY, bool FlipHorizontal)
{
    public static AffineTransform Identity => new(0f, 1f, 1f, 0f, 0f, false);

    /// <summary>
    /// The inverse map that sampling uses: for output pixel (x, y) the input position is
    /// (A*x + B*y + C, D*x + E*y + F). Coefficients are computed in double, then rounded once,
    /// so a pure integer shift samples exact pixel centres. Every operation is a correctly rounded
    /// IEEE one (sine and cosine included, see <see cref="ImageWarp.SinCosDegrees"/>), so the
    /// gather kernel (cuda/kernels/data.cu) computes the same map bit for bit.
    /// </summary>
    public SamplingMap ToSamplingMap(int height, int width)
    {
        var (sin, cos) = ImageWarp.SinCosDegrees(RotationDegrees);
        double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
        // Output q, input p: p - c = Z^-1 R(-theta) (q - c - s), with R(theta) = [[cos, sin], [-sin, cos]]
        // in y-down image coordinates (counter-clockwise as displayed).
        double a = cos / ZoomX, b = -sin / ZoomX;
        double d = sin / ZoomY, e = cos / ZoomY;
        double ox = cx + ShiftX, oy = cy + ShiftY;
        double c = cx - a * ox - b * oy;
        double f = cy - d * ox - e * oy;
        if (FlipHorizontal)
        {
            // The mirror is applied to the input first, so its inverse is applied last: x_in = (W-1) - x.
            a = -a;
            b = -b;
            c = (width - 1) - c;
        }
        return new SamplingMap((float)a, (float)b, (float)c, (float)d, (float)e, (float)f);
    }
}

/// <summary>Output pixel (x, y) samples the input at (A*x + B*y + C, D*x + E*y + F).</summary>
public readonly record struct SamplingMap(float A, float B, float C, float D, float E, float F);

/// <summary>
/// Pixel work shared by the plain and the augmented batch: byte to float normalisation and
/// the affine warp. A GPU kernel that must match bit for bit does the same arithmetic in the
/// same order without contracting multiply-adds into FMAs (__fmul_rn / __fadd_rn).
/// </summary>
public static class ImageWarp
{
    /// <summary>The largest rotation <see cref="SinCosDegrees"/> accepts, in degrees either way.</summary>
    public const float MaxRotationDegrees = 360f;

    /// <summary>
    /// Sine and cosine of an angle in degrees from +, -, *, / on doubles only, so that a kernel
    /// reproduces them bit for bit (the CUDA math library's and the C runtime's sin/cos differ in
    /// the last bit, and there is no libdevice on the clang path). The angle is reduced to
    /// [-45, 45] degrees by exact subtractions of 90 (exact: a float in degrees minus a multiple
    /// of 90 is representable in double), converted to radians, and fed to the Taylor series in
    /// Horner form up to x^19 / x^18, whose truncation error below pi/4 (under 1e-19) is far
    /// beneath double rounding. Within 1e-15 of the true values (tested); exact at multiples of 90 degrees.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">|degrees| is above <see cref="MaxRotationDegrees"/> or not a number.</exception>
    public static (double Sin, double Cos) SinCosDegrees(float degrees)
    {
        if (!(Math.Abs(degrees) <= MaxRotationDegrees))
            throw new ArgumentOutOfRangeException(nameof(degrees), $"A rotation must be within +-{MaxRotationDegrees} degrees; got {degrees}.");
        double reduced = degrees;
        int quadrant = 0;
        while (reduced > 45.0) { reduced -= 90.0; quadrant++; }
        while (reduced < -45.0) { reduced += 90.0; quadrant--; }
        double x = reduced * (Math.PI / 180.0);
        double x2 = x * x;
        // sin x = x (1 - x^2/(2*3) (1 - x^2/(4*5) (1 - ...))), cos x = 1 - x^2/(1*2) (1 - x^2/(3*4) (1 - ...)).
        double sinSeries = 1.0, cosSeries = 1.0;
        for (int k = 9; k >= 1; k--)
        {
            sinSeries = 1.0 - x2 / (double)((2 * k) * (2 * k + 1)) * sinSeries;
            cosSeries = 1.0 - x2 / (double)((2 * k - 1) * (2 * k)) * cosSeries;
        }
        double sin = x * sinSeries, cos = cosSeries;
        return (quadrant & 3) switch
        {
            0 => (sin, cos),
            1 => (cos, -sin),
            2 => (-sin, -cos),
            _ => (-cos, sin),
        };
    }

    /// <summary>dst[i] = src[i] / 255 (a correctly rounded division, so SIMD and scalar agree).</summary>
    public static void Normalise(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"Normalise needs {source.Length} destination floats; got {destination.Length}.", nameof(destination));
        int i = 0;
        if (Vector256.IsHardwareAccelerated && source.Length >= Vector256<byte>.Count)
        {
            var scale = Vector256.Create(255f);
            ref byte src = ref MemoryMarshal.GetReference(source);
            ref float dst = ref MemoryMarshal.GetReference(destination);
            for (; i <= source.Length - Vector256<byte>.Count; i += Vector256<byte>.Count)
            {
                var bytes = Vector256.LoadUnsafe(ref src, (nuint)i);
                var (lo16, hi16) = Vector256.Widen(bytes);
                var (a, b) = Vector256.Widen(lo16);
                var (c, d) = Vector256.Widen(hi16);
                (Vector256.ConvertToSingle(a.AsInt32()) / scale).StoreUnsafe(ref dst, (nuint)i);
                (Vector256.ConvertToSingle(b.AsInt32()) / scale).StoreUnsafe(ref dst, (nuint)(i + 8));
                (Vector256.ConvertToSingle(c.AsInt32()) / scale).StoreUnsafe(ref dst, (nuint)(i + 16));
                (Vector256.ConvertToSingle(d.AsInt32()) / scale).StoreUnsafe(ref dst, (nuint)(i + 24));
            }
        }
        for (; i < source.Length; i++)
            destination[i] = source[i] / 255f;
    }

    /// <summary>
    /// Warps a C x H x W byte image into normalised floats (x / 255) by <paramref name="map"/>,
    /// with bilinear sampling and Keras' default fill_mode='nearest': a position outside the
    /// image takes the nearest edge pixel, so no black borders appear. Interpolation runs on
    /// the 0..255 values and is clamped to that range before dividing by 255, so a sample at an
    /// exact pixel centre equals <see cref="Normalise"/> of that pixel bit for bit.
    /// </summary>
    public static void Warp(ReadOnlySpan<byte> source, int channels, int height, int width, SamplingMap map, Span<float> destination)
    {
        int plane = height * width;
        if (source.Length < channels * plane || destination.Length < channels * plane)
            throw new ArgumentException($"Warp needs {channels * plane} source bytes and destination floats; got {source.Length} and {destination.Length}.");
        // Lengths are checked above, so the loop reads through references without bounds checks.
        ref byte src = ref MemoryMarshal.GetReference(source);
        ref float dst = ref MemoryMarshal.GetReference(destination);
        int lastX = width - 1, lastY = height - 1;
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                // Clamping to one pixel beyond the edge changes nothing under 'nearest' fill and
                // keeps the integer conversion safe for any transform.
                float sx = Math.Clamp(map.A * x + map.B * y + map.C, -1f, width);
                float sy = Math.Clamp(map.D * x + map.E * y + map.F, -1f, height);
                float floorX = MathF.Floor(sx), floorY = MathF.Floor(sy);
                float fx = sx - floorX, fy = sy - floorY;
                int ix = (int)floorX, iy = (int)floorY;
                int x0 = Math.Clamp(ix, 0, lastX), x1 = Math.Clamp(ix + 1, 0, lastX);
                int y0 = Math.Clamp(iy, 0, lastY) * width, y1 = Math.Clamp(iy + 1, 0, lastY) * width;
                int o = y * width + x;
                for (int p = 0; p < channels * plane; p += plane)
                {
                    float p00 = Unsafe.Add(ref src, p + y0 + x0), p01 = Unsafe.Add(ref src, p + y0 + x1);
                    float p10 = Unsafe.Add(ref src, p + y1 + x0), p11 = Unsafe.Add(ref src, p + y1 + x1);
                    float top = p00 + fx * (p01 - p00);
                    float bottom = p10 + fx * (p11 - p10);
                    float value = top + fy * (bottom - top);
                    Unsafe.Add(ref dst, p + o) = Math.Clamp(value, 0f, 255f) / 255f;
                }
            }
        }
    }
}

/// <summary>
/// Draws each image's transform from a counter-based hash of (seed, epoch, record index):
/// no generator state, so results do not depend on thread scheduling, batch order or batch
/// size, a resumed run needs only (seed, epoch), and a GPU kernel can draw the same numbers.
/// </summary>
public sealed class Augmenter
{
    // Keeps augmentation's random stream apart from dropout's when both use the run seed.
    private const ulong StreamSalt = 0xA0C3_E1B5_7F29_4D61UL;

    /// <summary>Counter values reserved per image: rotation, zoom x, zoom y, shift x, shift y, flip (6 used).</summary>
    public const uint DrawsPerImage = 8;

    /// <exception cref="ArgumentOutOfRangeException">A range of the preset is outside what the warp supports.</exception>
    public Augmenter(AugmentationPreset preset, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(preset);
        if (!(preset.RotationDegrees >= 0f && preset.RotationDegrees <= ImageWarp.MaxRotationDegrees))
            throw new ArgumentOutOfRangeException(nameof(preset), $"Augmentation '{preset.Name}': RotationDegrees must be in [0, {ImageWarp.MaxRotationDegrees}]; got {preset.RotationDegrees}.");
        if (!(preset.ZoomRange >= 0f && preset.ZoomRange < 1f))
            throw new ArgumentOutOfRangeException(nameof(preset), $"Augmentation '{preset.Name}': ZoomRange must be in [0, 1); got {preset.ZoomRange}.");
        if (!(preset.ShiftFraction >= 0f && preset.ShiftFraction <= 1f))
            throw new ArgumentOutOfRangeException(nameof(preset), $"Augmentation '{preset.Name}': ShiftFraction must be in [0, 1]; got {preset.ShiftFraction}.");
        Preset = preset;
        Seed = seed;
    }

    public AugmentationPreset Preset { get; }
    public ulong Seed { get; }

    /// <summary>
    /// The stream the draws come from: draw k of record r in epoch e is
    /// <see cref="DropoutRandom.Uniform"/>(RandomStream, e, r * <see cref="DrawsPerImage"/> + k).
    /// The gather kernel receives this value and draws the same numbers.
    /// </summary>
    public ulong RandomStream => Seed ^ StreamSalt;

    /// <summary>The transform of record <paramref name="recordIndex"/> in <paramref name="epoch"/> for an image of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public AffineTransform Draw(int epoch, int recordIndex, int height, int width)
    {
        if (Preset.IsIdentity)
            return AffineTransform.Identity;
        ulong stream = RandomStream;
        uint first = (uint)recordIndex * DrawsPerImage;
        float Symmetric(uint k, float range) =>
            range == 0f ? 0f : (2f * DropoutRandom.Uniform(stream, (ulong)epoch, first + k) - 1f) * range;
        return new AffineTransform(
            RotationDegrees: Symmetric(0, Preset.RotationDegrees),
            ZoomX: 1f + Symmetric(1, Preset.ZoomRange),
            ZoomY: 1f + Symmetric(2, Preset.ZoomRange),
            ShiftX: Symmetric(3, Preset.ShiftFraction * width),
            ShiftY: Symmetric(4, Preset.ShiftFraction * height),
            FlipHorizontal: Preset.HorizontalFlip && DropoutRandom.Uniform(stream, (ulong)epoch, first + 5) < 0.5f);
    }

    /// <summary>Warps one record of <paramref name="data"/> into <paramref name="destination"/> (C x H x W floats).</summary>
    public void Augment(Dataset data, int recordIndex, int epoch, Span<float> destination)
    {
        var map = Draw(epoch, recordIndex, data.Height, data.Width).ToSamplingMap(data.Height, data.Width);
        ImageWarp.Warp(data.Image(recordIndex), data.Channels, data.Height, data.Width, map, destination);
    }

    internal unsafe void AugmentBatch(Dataset data, ReadOnlySpan<int> indices, Span<float> images, int epoch, int maxDegreeOfParallelism)
    {
        int sampleSize = data.SampleSize;
        int count = indices.Length;
        // Below a few images the thread hand-off costs more than the warp itself.
        if (maxDegreeOfParallelism == 1 || count < 4)
        {
            for (int i = 0; i < count; i++)
                Augment(data, indices[i], epoch, images.Slice(i * sampleSize, sampleSize));
            return;
        }

        fixed (int* indexPointer = indices)
        fixed (float* imagePointer = images)
        {
            nint indexAddress = (nint)indexPointer, imageAddress = (nint)imagePointer;
            // Each image is written by exactly one iteration from its own random draws, so the
            // result is the same for any partition of the batch among threads.
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism }, i =>
            {
                int record = ((int*)indexAddress)[i];
                Augment(data, record, epoch, new Span<float>((float*)imageAddress + (long)i * sampleSize, sampleSize));
            });
        }
    }
}
