# moby/buildkit#2720: a first RUN that writes into a directory of the (eStargz) base, an edited step,
# then a step that needs a file of the base from that directory.
ARG BASE
FROM ${BASE}
RUN touch /opt/base-a/added && ls /opt/base-a > /listing
ARG HELLO
RUN echo "$HELLO" > /hello
RUN ls /opt/base-a/blob1 > /seen
