using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Runtime;

/// <summary>A loaded PTX file (one .cu source); hands out its kernels.</summary>
public sealed class DeviceModule : IDisposable
{
    private readonly Device _device;
    private readonly nint _handle;
    private readonly List<Kernel> _kernels = [];
    private bool _disposed;

    internal DeviceModule(Device device, string fileName, nint handle)
    {
        _device = device;
        FileName = fileName;
        _handle = handle;
    }

    public string FileName { get; }

    /// <summary>The kernel named <paramref name="name"/> (its extern "C" name, e.g. "axpy_v1").</summary>
    public Kernel GetKernel(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var kernel = new Kernel(_device, name, _device.Runtime.GetFunction(_handle, name));
        _kernels.Add(kernel);
        return kernel;
    }

    public void Dispose()
    {
        if (_disposed) return;
        foreach (Kernel kernel in _kernels) kernel.Release();
        _device.Runtime.UnloadModule(_handle);
        _disposed = true;
    }
}

/// <summary>
/// One kernel of a module. <c>Launch(grid, block, sharedBytes, stream, args...)</c> passes each
/// argument by address (as cuLaunchKernel's kernelParams) from the stack: no allocation per
/// launch. Pass <see cref="DeviceBuffer{T}.Pointer"/> for pointer parameters and exactly the
/// parameter's type for scalars (int, not long, for an int parameter). Valid while its
/// module is loaded.
/// </summary>
public sealed unsafe partial class Kernel
{
    private readonly Device _device;
    private readonly nint _function;
    private nint _nameUtf8;   // NUL-terminated copy for the emulator, freed with the module

    internal Kernel(Device device, string name, nint function)
    {
        _device = device;
        Name = name;
        _function = function;
        byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        _nameUtf8 = (nint)NativeMemory.Alloc((nuint)utf8.Length);
        utf8.CopyTo(new Span<byte>((void*)_nameUtf8, utf8.Length));
    }

    public string Name { get; }

    /// <summary>Allows more than 48 KB of dynamic shared memory (up to the device's opt-in limit).</summary>
    public void SetMaxDynamicSharedBytes(int bytes) => _device.Runtime.SetMaxDynamicSharedBytes(_function, bytes, Name);

    /// <summary>
    /// The single launch path: <paramref name="args"/>[i] points at the i-th value of
    /// <paramref name="argSizes"/>[i] bytes. Public for callers that build argument lists themselves.
    /// </summary>
    public void LaunchCore(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, void** args, int* argSizes, int argCount)
    {
        if (_nameUtf8 == 0) throw new ObjectDisposedException($"kernel {Name}", "its module was disposed");
        if (grid.Count == 0 || block.Count == 0)
            throw new ArgumentException($"kernel {Name}: grid {grid} and block {block} must be non-empty");
        if (stream.Device != _device) throw new ArgumentException($"kernel {Name}: the stream belongs to another device");
        _device.Runtime.Launch(_function, (byte*)_nameUtf8, Name, grid, block, sharedBytes, stream.Handle, args, argSizes, argCount);
    }

    internal void Release()
    {
        NativeMemory.Free((void*)_nameUtf8);
        _nameUtf8 = 0;
    }

    public override string ToString() => Name;
}
