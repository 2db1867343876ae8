namespace LaPerm.Core.Backend;

/// <summary>
/// A dense, row-major array of <typeparamref name="T"/> owned by one backend
/// (host memory for <c>cpu</c> and <c>emu</c>, device memory for <c>cuda</c>).
/// Lifetimes are explicit: whoever allocates disposes. No finalizer, because a
/// device allocation cannot be freed from the finalizer thread.
/// </summary>
public abstract class Tensor<T> : IDisposable where T : unmanaged
{
    protected Tensor(Shape shape)
    {
        Shape = shape;
    }

    public Shape Shape { get; }

    /// <summary>Number of elements (product of the shape).</summary>
    public int Length => Shape.Length;

    /// <summary>The backend that owns this tensor; ops reject tensors of another backend.</summary>
    public abstract IBackend Backend { get; }

    public abstract void Dispose();

    public override string ToString() => $"{typeof(T).Name}{Shape}";
}
