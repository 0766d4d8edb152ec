// Type-checked (tsc --noEmit) against the Prisma 7 client generated from
// `chatwithme prisma export --prisma 7` by tests/prisma_compat/test_prisma_client.py: the
// extended tables and columns are there with the types a frontend would use.
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/prisma/client";

export async function readAndWrite(userId: string, conversationId: string): Promise<string> {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: "postgresql://x" }) });
  const conversation = await prisma.conversation.findUniqueOrThrow({
    where: { id: conversationId },
    include: { messages: { include: { replies: true, reactions: true } } },
  });
  const status: string = conversation.messages[0].status;
  const tokens: number | null = conversation.messages[0].promptTokens;
  const ids: string[] = conversation.messages[0].promptMessageIds;
  const reasoning: string | null = conversation.messages[0].reasoning;
  const temperature: number | null = conversation.temperature;
  await prisma.messageReaction.create({
    data: { messageId: conversation.messages[0].id, userId, type: "thumbs_up" },
  });
  const session = await prisma.session.findFirst({ where: { userId }, include: { user: true } });
  return `${status} ${tokens} ${ids.length} ${session?.user.email} ${reasoning} ${temperature}`;
}
