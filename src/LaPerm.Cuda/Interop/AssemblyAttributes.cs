using System.Runtime.CompilerServices;

// Every native signature in this assembly is blittable: a non-blittable one fails at compile
// time instead of silently marshalling (and allocating) on each call.
[assembly: DisableRuntimeMarshalling]
[assembly: InternalsVisibleTo("LaPerm.Cuda.Tests")]
