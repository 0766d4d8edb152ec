// Auth.js (next-auth v5): email sign-in links, database sessions in the tables the
// ChatWithMe API reads. The API finds the session row from the same cookie
// (authjs.session-token) and accepts the CSRF token of Auth.js's cookie (authjs.csrf-token)
// because both sides sign it with the same AUTH_SECRET.
import NextAuth from "next-auth";
import Nodemailer from "next-auth/providers/nodemailer";
import { PrismaAdapter } from "@auth/prisma-adapter";
import { prisma } from "@/lib/prisma";

export const { handlers, auth, signIn, signOut } = NextAuth({
  adapter: PrismaAdapter(prisma),
  session: { strategy: "database" },
  providers: [
    Nodemailer({
      // Any SMTP server; the default is a local mail catcher (e.g. Mailpit on port 1025).
      server: process.env.EMAIL_SERVER ?? "smtp://127.0.0.1:1025",
      from: process.env.EMAIL_FROM ?? "ChatWithMe <no-reply@localhost>",
    }),
  ],
  cookies: process.env.AUTH_COOKIE_DOMAIN
    ? {
        // Same site, different origins (app.example.com + api.example.com): the session
        // cookie on the parent domain, so that the API's host receives it too.
        sessionToken: {
          name: process.env.AUTH_URL?.startsWith("https://")
            ? "__Secure-authjs.session-token"
            : "authjs.session-token",
          options: {
            httpOnly: true,
            sameSite: "lax",
            path: "/",
            secure: process.env.AUTH_URL?.startsWith("https://") ?? false,
            domain: process.env.AUTH_COOKIE_DOMAIN,
          },
        },
      }
    : undefined,
});
