"""Interoperability with databases managed by Prisma (and NextAuth's Prisma adapter)."""

from prisma_compat.cuid import cuid, is_cuid

__all__ = ["cuid", "is_cuid"]
