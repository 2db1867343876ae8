namespace LaPerm.Core.Backend;

/// <summary>Argument checks shared by backends, with messages that name what was expected.</summary>
public static class BackendGuard
{
    public static void Length<T>(Tensor<T> t, long expected, string name) where T : unmanaged
    {
        if (t.Length != expected)
            throw new ArgumentException($"{name} has {t.Length} elements {t.Shape}, expected {expected}");
    }

    public static void AtLeast<T>(Tensor<T> t, long expected, string name) where T : unmanaged
    {
        if (t.Length < expected)
            throw new ArgumentException($"{name} has {t.Length} elements {t.Shape}, expected at least {expected}");
    }
}
