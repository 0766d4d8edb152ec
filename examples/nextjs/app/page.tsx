import Link from "next/link";
import { auth, signIn, signOut } from "@/auth";

export const dynamic = "force-dynamic";

export default async function Home() {
  const session = await auth();
  if (!session?.user) {
    return (
      <main>
        <h1>ChatWithMe</h1>
        <form
          id="signin"
          action={async (form: FormData) => {
            "use server";
            await signIn("nodemailer", { email: String(form.get("email")), redirectTo: "/chat" });
          }}
        >
          <label>
            Email <input id="email" name="email" type="email" required />
          </label>{" "}
          <button type="submit">Email me a sign-in link</button>
        </form>
      </main>
    );
  }
  return (
    <main>
      <h1>ChatWithMe</h1>
      <p id="signed-in">Signed in as {session.user.email}</p>
      <p>
        <Link href="/chat">Start chatting</Link>
      </p>
      <form
        action={async () => {
          "use server";
          await signOut({ redirectTo: "/" });
        }}
      >
        <button type="submit">Sign out</button>
      </form>
    </main>
  );
}
